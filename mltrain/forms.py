from django import forms

from mltrain.archive import InvalidArchive, inspect_archive

BACKBONE_CHOICES = [
    ("efficientnet_lite0", "EfficientNet-Lite0, ImageNet weights (installed: no download)"),
    ("efficientnet_lite1", "EfficientNet-Lite1, ImageNet weights (installed)"),
    ("efficientnet_lite2", "EfficientNet-Lite2, ImageNet weights (installed)"),
    ("imageclass", "ImageClass: the active model (images at its input size)"),
    ("mobilenet_v2", "MobileNetV2, ImageNet weights (the trainer needs internet once)"),
    ("efficientnet_b0", "EfficientNetB0, ImageNet weights"),
    ("resnet50", "ResNet50, ImageNet weights"),
    ("vgg16", "VGG16, ImageNet weights"),
]


# Below this many validation images in a class, its accuracy is too coarse to trust: say so.
MIN_VALIDATION_IMAGES = 10


class TrainingJobForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="Registry name of the new model, e.g. pets.")
    dataset = forms.FileField(
        help_text="A zip of class folders: <class>/<image>, JPEG, PNG, GIF, WebP or BMP, at least 2 classes."
    )
    backbone = forms.ChoiceField(choices=BACKBONE_CHOICES, initial="efficientnet_lite0")
    image_size = forms.IntegerField(
        required=False,
        min_value=32,
        max_value=512,
        help_text="Input size in pixels (default: the backbone's).",
    )
    head_epochs = forms.IntegerField(min_value=0, max_value=200, initial=10)
    fine_tune_epochs = forms.IntegerField(min_value=0, max_value=200, initial=10)
    batch_size = forms.IntegerField(min_value=1, max_value=1024, initial=32)
    validation_fraction = forms.FloatField(min_value=0.05, max_value=0.5, initial=0.2)
    activate_when_done = forms.BooleanField(
        required=False, help_text="Serve the new model as soon as it is trained."
    )

    def clean_dataset(self):
        upload = self.cleaned_data["dataset"]
        try:
            self.summary = inspect_archive(upload)
        except InvalidArchive as exc:
            raise forms.ValidationError(str(exc)) from None
        return upload

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("backbone") == "imageclass" and cleaned.get("image_size"):
            self.add_error(
                "image_size", "The ImageClass backbone keeps the active model's input size."
            )
        return cleaned

    def thin_classes(self) -> dict[str, int]:
        """The classes whose validation share holds fewer than MIN_VALIDATION_IMAGES images
        (as the stratified split rounds it): their figures say little."""
        fraction = self.cleaned_data["validation_fraction"]
        held_out = {
            name: max(1, round(count * fraction))
            for name, count in self.summary.class_counts.items()
        }
        return {name: n for name, n in held_out.items() if n < MIN_VALIDATION_IMAGES}

    def config(self) -> dict:
        data = self.cleaned_data
        return {
            "backbone": data["backbone"],
            "weights": "active" if data["backbone"] == "imageclass" else "imagenet",
            "image_size": data["image_size"],
            "head_epochs": data["head_epochs"],
            "fine_tune_epochs": data["fine_tune_epochs"],
            "batch_size": data["batch_size"],
            "validation_fraction": data["validation_fraction"],
        }
