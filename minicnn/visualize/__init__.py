"""Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, on minicnn's own backward pass.

Every projection and gradient here is ``net.forward`` + ``net.backward(dy, rule=...)`` (ARCHITECTURE.md §5); nothing in
this package computes a layer's backward on its own.

    project, saliency, guided_backprop, input_gradient   projections to pixels (ZF Fig. 1-2; Simonyan; Springenberg)
    top_k, receptive_field, crop                         top-9 per feature map with receptive-field crops (Fig. 2)
    occlusion                                            occlusion sensitivity grids (Fig. 7)
    FeatureEvolution, plot_evolution                     feature evolution during training (Fig. 4)
    invariance, transform, plot_invariance               translation / scale / rotation invariance (Fig. 5)
    correspondence, plot_correspondence                  part correspondence (Table 1)
    train_clipping_pair, plot_clipping                   feature-scale clipping (Fig. 6)
    plots.plot_filters, plots.plot_activations, ...      filters and activation maps
    class_model, invert, tsne, linear_probes, fgsm,      beyond the paper: class models (Simonyan), inversion with a
    cascading_randomization                              TV prior (Mahendran-Vedaldi), t-SNE, linear probes (ZF
                                                         Table 7), FGSM (Goodfellow), sanity check (Adebayo)
    write_gallery, gallery_from_run                      PNGs + index.html (``minicnn visualize``)
"""
from .adversarial import fgsm, fgsm_accuracy, plot_fgsm
from .class_model import class_model, plot_class_models
from .embedding import layer_codes, plot_tsne, tsne
from .inversion import invert, plot_inversions, total_variation
from .probes import ProbeResult, linear_probes, plot_probes
from .sanity import Cascade, cascading_randomization, plot_cascade
from .clipping import plot_clipping, train_clipping_pair
from .correspondence import Correspondence, correspondence, plot_correspondence
from .evolution import FeatureEvolution, plot_evolution, plot_settling, settling
from .gallery import DEFAULT_ITEMS, GALLERY_ITEMS, gallery_from_run, write_gallery
from .invariance import Invariance, invariance, plot_invariance, transform
from .occlusion import Occlusion, occlusion
from .plots import plot_activations, plot_filters, plot_occlusion, plot_saliency, plot_topk
from .project import guided_backprop, input_gradient, project, project_units, saliency, strongest_position
from .topk import TopK, crop, receptive_field, top_activations, top_k

__all__ = ["project", "project_units", "strongest_position", "input_gradient", "saliency", "guided_backprop",
           "TopK", "top_k", "top_activations", "receptive_field", "crop", "Occlusion", "occlusion",
           "FeatureEvolution", "plot_evolution", "settling", "plot_settling", "Invariance", "invariance", "transform",
           "plot_invariance",
           "Correspondence", "correspondence", "plot_correspondence", "train_clipping_pair", "plot_clipping",
           "plot_filters", "plot_activations", "plot_topk", "plot_saliency", "plot_occlusion",
           "write_gallery", "gallery_from_run", "GALLERY_ITEMS", "DEFAULT_ITEMS",
           "class_model", "plot_class_models", "invert", "total_variation", "plot_inversions", "layer_codes", "tsne",
           "plot_tsne", "ProbeResult", "linear_probes", "plot_probes", "fgsm", "fgsm_accuracy", "plot_fgsm",
           "Cascade", "cascading_randomization", "plot_cascade"]
