"""WeakSeg core library: weakly supervised brain-tumour segmentation from slice-level labels.

Imports without Slicer, Qt or a GPU; heavy dependencies (torch, monai) load where used.
"""
__version__ = "0.1.0"
