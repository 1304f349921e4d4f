"""Training data as darknet's data.c builds it: detection batches with jitter, flips and
HSV distortion; classification batches with darknet's random crops; background loading."""
