"""Torch-free runtime: run exported gentoolkit models with numpy and onnxruntime only.

Nothing here imports torch; onnxruntime itself is imported when a model is loaded.
"""
