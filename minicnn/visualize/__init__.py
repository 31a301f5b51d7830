"""Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, on minicnn's own backward pass.

Every projection and gradient here is ``net.forward`` + ``net.backward(dy, rule=...)`` (DESIGN §4); nothing in
this package computes a layer's backward on its own.
"""
from .project import guided_backprop, input_gradient, project, project_units, saliency, strongest_position

__all__ = ["project", "project_units", "strongest_position", "input_gradient", "saliency", "guided_backprop"]
