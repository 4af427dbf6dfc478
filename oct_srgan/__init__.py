"""oct-srgan: 4x super-resolution for retinal OCT with SRGAN, on MONAI and MLflow."""

__version__ = "0.1.0"
