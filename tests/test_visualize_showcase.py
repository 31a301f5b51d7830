"""Figures a lecturer can use (issue 17): resolution, "outside the image" colour, fixed occlusion scale,
ZF-normalised projections, one-line captions, bounded work per gallery item."""
import numpy as np
import pytest

from minicnn.visualize import plots
from minicnn.visualize import gallery
from minicnn.visualize.occlusion import occlusion

from test_visualize_analyses import small_net, synthetic_splits


def test_outside_the_image_has_its_own_colour_not_white():
    img = np.zeros((1, 6, 6))
    img[0, 2:4, 2:4] = 1.0                       # white strokes on black, as Fashion-MNIST
    img[0, :, :2] = np.nan                       # the receptive field reaches past the left edge
    shown = plots.image_to_display(img)
    assert shown.shape == (6, 6, 3)
    assert np.allclose(shown[0, 0], plots.OUTSIDE) and not np.allclose(shown[0, 0], 1.0)
    assert np.allclose(shown[2, 2], 1.0) and np.allclose(shown[0, 5], 0.0)
    assert plots.image_to_display(np.ones((1, 3, 3))).shape == (3, 3)    # no NaN: stays grey


def test_zf_normalisation_stretches_structure_past_one_hot_pixel():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((1, 9, 9)) * 0.1
    p[0, 4, 4] = 100.0                           # one extreme pixel
    sym = plots.projection_to_display(p)
    zf = plots.projection_to_display(p, "zf")
    assert np.ptp(np.delete(sym.ravel(), 40)) < 0.01          # symmetric scaling flattens the rest to grey
    assert np.ptp(np.delete(zf.ravel(), 40)) > 0.9            # ZF's contrast normalisation shows it
    mask = np.zeros((9, 9), bool)
    mask[:, 0] = True
    assert np.allclose(plots.projection_to_display(p, "zf", mask)[3, 0], plots.OUTSIDE)
    with pytest.raises(ValueError, match="normalize"):
        plots.projection_to_display(p, "max")


def test_figures_are_drawn_at_lecture_resolution(tmp_path):
    fig = plots.figure(2, 1)
    assert fig.dpi >= 120
    path = plots.save(fig, tmp_path / "f.png")
    from PIL import Image
    with Image.open(path) as im:
        assert im.size[0] >= 2 * 120 - 10


def test_occlusion_probability_is_on_a_fixed_zero_one_scale():
    net = small_net()
    splits = synthetic_splits()
    x, y = splits.test.x[:1], splits.test.y[:1]
    res = occlusion(net, x[0], int(y[0]), size=4, stride=4)
    fig = plots.plot_occlusion([res], x, splits.class_names)
    axes = fig.axes
    panel_d = [ax for ax in axes if ax.get_title().startswith("(d)")][0]
    assert panel_d.images[0].get_clim() == (0.0, 1.0)


def test_every_gallery_figure_carries_its_look_at_line_and_work_is_bounded(tmp_path, monkeypatch):
    net = small_net()
    splits = synthetic_splits()
    seen = []
    from minicnn.visualize import adversarial
    real = adversarial.fgsm_accuracy

    def counting(net_, x, y, eps, **kw):
        seen.append(len(x))
        return real(net_, x[:8], y[:8], eps, **kw)
    monkeypatch.setattr(adversarial, "fgsm_accuracy", counting)
    monkeypatch.setattr(gallery, "MAX_EVAL_IMAGES", 5)
    saved = []
    monkeypatch.setattr(plots, "save", lambda fig, path: saved.append(fig) or path)
    gallery.write_gallery(net, splits, tmp_path / "g", ["filters", "occlusion", "adversarial"], n_examples=3)
    assert seen == [5] and len(splits.test.y) > 5
    assert len(saved) == 3
    for fig, item in zip(saved, ["filters", "occlusion", "adversarial"]):
        assert gallery.LOOK_AT[item] in " ".join(t.get_text().replace("\n", " ") for t in fig.texts)
    assert set(gallery.GALLERY_ITEMS) <= set(gallery.LOOK_AT)
