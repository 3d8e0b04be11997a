"""Data: the course's datasets as uint8 tensors, image conversions and checks, mini-batches.

* :mod:`.datasets`: :func:`load` (CIFAR-10, Fashion-MNIST, noise images), :func:`class_names`,
  :func:`data_dir`, :class:`DatasetNotFoundError`;
* :mod:`.images`: :func:`to_float`, :func:`as_float_images`, :func:`check_images`, :func:`match_format`;
* :mod:`.batches`: :class:`Batches` (augmenting iterator), :func:`random_crop_flip`, :func:`subset`;
* :mod:`.ood_sets`: :func:`load_svhn` (optional, downloaded on first use);
* :mod:`.volumes`: :func:`make_shapes_3d`, a synthetic 3D shape-classification task (generated, not downloaded).

``python -m labutils.data`` (``make data``) downloads and caches every dataset of the course.
"""
from .batches import Batches, random_crop_flip, subset
from .datasets import (CACHE_VERSION, CIFAR10_CLASSES, DATASETS, FASHION_MNIST_CLASSES, SPLITS, DatasetNotFoundError,
                       class_names, data_dir, load)
from .images import as_float_images, check_images, match_format, to_float
from .ood_sets import load_svhn
from .volumes import SHAPES_3D, make_shapes_3d

__all__ = ["load", "class_names", "data_dir", "DATASETS", "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES",
           "DatasetNotFoundError", "CACHE_VERSION", "SPLITS", "to_float", "as_float_images", "check_images", "match_format",
           "Batches", "random_crop_flip", "subset", "load_svhn", "make_shapes_3d", "SHAPES_3D"]
