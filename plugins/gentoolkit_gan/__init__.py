"""Built-in GAN family: MLP and DCGAN generators and discriminators, losses, mode-collapse metrics."""
