"""Several trained models as one Keras model that averages their probabilities. Networks
that learnt differently (one fine-tuned from ImageNet weights, one trained from scratch) make
different mistakes, so their average is right more often than either.

The ensemble takes the largest input of its members; a member with a smaller input sees the
image reduced inside the model by average pooling, an exact area reduction for a whole factor
that every LiteRT runtime has as a builtin. The member with the largest input comes first,
which is the one Grad-CAM explains (`classifier.serving.explain.network_of`)."""

import keras
from keras import layers


def input_side(model: keras.Model) -> int:
    height, width = model.input_shape[1:3]
    if height != width:
        raise ValueError(f"{model.name} takes {height}x{width} images; members must be square")
    return height


def has_own_views(model: keras.Model) -> bool:
    """Whether the model already averages views of the image (our networks wrap theirs in a
    test-time-augmentation model that calls it on the image and its mirror image)."""
    return any(isinstance(layer, keras.Model) for layer in model.layers)


def build_ensemble(
    members: list[keras.Model],
    weights: list[float] | None = None,
    mirror: bool = False,
    temperatures: list[float | None] | None = None,
) -> keras.Model:
    """`members` ordered largest input first; `weights` (default equal) sum to one. With
    `mirror`, a member that does not already average views of the image answers for the
    image and its mirror image, averaged (twice its cost, a common gain on photos). A member
    with a temperature (its report's calibration) is averaged calibrated, p^(1/T)
    renormalised: an over-confident member would otherwise outvote the others."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    weights = weights or [1 / len(members)] * len(members)
    if len(weights) != len(members) or abs(sum(weights) - 1) > 1e-6 or min(weights) < 0:
        raise ValueError("give one non-negative weight per member, summing to 1")
    classes = {model.output_shape[-1] for model in members}
    if len(classes) != 1:
        raise ValueError("the members answer different numbers of classes")
    side = input_side(members[0])
    inputs = keras.Input((side, side, 3), dtype="uint8", name="pixels")
    temperatures = temperatures or [None] * len(members)
    weighted = []
    for number, (member, weight, temperature) in enumerate(
        zip(members, weights, temperatures, strict=True)
    ):
        x = inputs
        member_side = input_side(member)
        if member_side != side:
            if side % member_side or member_side > side:
                raise ValueError(
                    f"{member.name} takes {member_side} px: the first member's {side} px must be "
                    "a whole multiple of every other member's input"
                )
            factor = side // member_side
            as_float = layers.Rescaling(1.0, name=f"float_pixels_for_member_{number}")(x)
            x = layers.AveragePooling2D(factor, name=f"reduce_for_member_{number}")(as_float)
        # Renamed by a wrapper: two members may carry the same name (two runs of one recipe).
        network = keras.Model(member.inputs[0], member.outputs[0], name=f"member_{number}")
        probabilities = network(x)
        if mirror and not has_own_views(member):
            mirrored = network(keras.ops.flip(x, axis=2))
            probabilities = layers.Average(name=f"mirror_average_{number}")(
                [probabilities, mirrored]
            )
        if temperature:
            logits = layers.Rescaling(1 / temperature, name=f"temperature_of_member_{number}")(
                keras.ops.log(keras.ops.maximum(probabilities, 1e-12))
            )
            probabilities = layers.Softmax(name=f"calibrated_member_{number}")(logits)
        weighted.append(layers.Rescaling(weight, name=f"weight_of_member_{number}")(probabilities))
    averaged = layers.Add(name="probabilities", dtype="float32")(weighted)
    return keras.Model(inputs, averaged, name="ensemble")
