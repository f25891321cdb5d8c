"""open-clip plugin for ceir-sdk."""
