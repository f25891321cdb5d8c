"""ceir latent models: the CEIR VAE, identity and PCA (registered through ceir_vae.plugin)."""
