"""Mixed supervision (issue 7; seed 001, thesis ch. 2–3): a U-Net with an image-level
classification branch learns from a few full masks — whole cases, or slices a radiologist
accepted or corrected in the review — and slice labels for everything else.

``sampler`` (4 masked tumour + 4 unmasked tumour + 2 healthy slices a batch), ``losses``
(a·L_seg + (1 − a)·L_cls with batch-adaptive class weights), ``optim`` (SGD with momentum on the
normalised, summed gradient and the thesis's plateau-halving learning rate), ``records`` (review
records → masks), ``data`` (the training slices), ``infer`` (whole-volume prediction) and
``train`` (``train_mixed``: the resumable run folder).
"""
