"""The Keras library of training: architectures, datasets, the training loop, transfer learning,
tuning, calibration and reports. It needs no Django: the mltrain app around it supplies paths
and settings."""
