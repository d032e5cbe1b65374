"""Built-in datasets of points and images, for every family that learns from samples."""
