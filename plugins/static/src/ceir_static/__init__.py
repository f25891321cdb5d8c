"""static plugin for ceir-sdk."""
