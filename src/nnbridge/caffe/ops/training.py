"""Layer types that only matter for training or evaluation: recognised, dropped from the inference graph with a
note (see :func:`nnbridge.caffe.importer.training_layer`). Their bottoms are consumed, so they never turn into
graph outputs; a data layer's tops must be given as net inputs instead.
"""

from __future__ import annotations

from nnbridge.caffe.importer import training_layer

# Data sources: deploy nets take these blobs as inputs.
training_layer("Data", note="reads an LMDB/LevelDB database; give its tops as net inputs")
training_layer("ImageData", note="reads image files listed in a text file; give its tops as net inputs")
training_layer("HDF5Data", note="reads HDF5 files; give its tops as net inputs")
training_layer("MemoryData", note="fed from memory by the training program; give its tops as net inputs")
training_layer("WindowData", note="R-CNN window sampler over images; give its tops as net inputs")
training_layer("DummyData", note="filler-generated data for benchmarks/tests; give its tops as net inputs")
training_layer("AnnotatedData", note="SSD database reader with box annotations; give its tops as net inputs")
training_layer("VideoData", note="SSD fork video/webcam reader; give its tops as net inputs")

# Losses and metrics: need labels, produce no inference output.
training_layer("Accuracy", note="top-k accuracy against labels (evaluation only)")
training_layer("SoftmaxWithLoss", note="softmax + multinomial logistic loss (training only; use Softmax)")
training_layer("EuclideanLoss", note="sum of squared differences / 2N (training only)")
training_layer("SigmoidCrossEntropyLoss", note="sigmoid + cross-entropy loss (training only; use Sigmoid)")
training_layer("HingeLoss", note="one-vs-all hinge loss (training only)")
training_layer("ContrastiveLoss", note="siamese contrastive loss (training only)")
training_layer("InfogainLoss", note="infogain-weighted logistic loss (training only)")
training_layer("MultinomialLogisticLoss", note="logistic loss on probabilities (training only)")
training_layer("SmoothL1Loss", note="Fast R-CNN box regression loss (training only)")
training_layer("MultiBoxLoss", note="SSD matching + localisation/confidence loss (training only)")
training_layer("DetectionEvaluate", note="SSD mAP bookkeeping against ground truth (evaluation only)")
training_layer("HDF5Output", note="writes its bottoms to an HDF5 file (a side effect, no output)")
