"""Entry point of the built-in sample datasets (``gentoolkit`` group, name ``datasets``). Torch-free.

The loaders are the host's (:mod:`gentoolkit.samples.data`); this plugin names them, so that the
GAN family, diffusion and any third-party family find ``ring``, ``grid``, ``digits`` and ``emoji`` alike,
whichever of them is installed or loaded.
"""

from gentoolkit import DatasetSpec, hookimpl

_D = "gentoolkit.samples.data"


@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="ring", kind="vectors", load=f"{_D}:ring",
                         description="8 Gaussians on a circle of radius 1, std 0.01 (PacGAN's 2D-ring)."))
    register(DatasetSpec(name="grid", kind="vectors", load=f"{_D}:grid",
                         description="25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN's 2D-grid)."))
    register(DatasetSpec(name="digits", kind="images", load=f"{_D}:digits",
                         description="scikit-learn's 1,797 handwritten digits, 8x8, values 0..16."))
    register(DatasetSpec(name="emoji", kind="images", load="gentoolkit.samples.emoji:load",
                         description="3,395 colour emoji of Noto Color Emoji (fonts-noto-color-emoji), labelled "
                                     "with their Unicode group (unicode-data); 32 px unless told."))
