"""openai plugin for ceir-sdk."""
