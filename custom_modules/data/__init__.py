"""Reading images, the dataset and sampler, training transforms, U-Net targets."""
