"""anthropic plugin for ceir-sdk."""
