"""vae plugin for ceir-sdk."""
