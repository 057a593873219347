from dataclasses import dataclass

from django import forms
from django.conf import settings

from classifier.fetcher import FetchError, fetch_image_bytes
from classifier.validation import InvalidImage, inspect_image

MAX_FILES = 20


@dataclass
class CheckedFile:
    name: str
    data: bytes | None = None
    refusal: str = ""  # why the file is not sent, for the user


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        # Every file's content is checked by UploadForm.clean_images, which names the file in
        # its messages (FileField's own "empty file" message would not say which one).
        files = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        return [f for f in files if hasattr(f, "read")]


class UploadForm(forms.Form):
    """One or more image files, or one image URL. Every file is decoded and checked here, so
    errors show next to the field and a rejected upload stores nothing."""

    images = MultipleImageField(
        required=False, widget=MultipleFileInput(attrs={"accept": "image/*", "multiple": True})
    )
    image_url = forms.URLField(
        required=False, max_length=2000, assume_scheme="https", label="or an image URL"
    )

    def __init__(self, *args, max_files=MAX_FILES, **kwargs):
        super().__init__(*args, **kwargs)
        # The widget stays multiple even for one file, so extra files are seen and refused.
        self.max_files = max_files
        self.checked: list[CheckedFile] = []  # every file chosen, in order, with its verdict

    def clean_images(self):
        """The files whose content checks out. Each refused file is kept with its reason in
        `checked`, so one bad file among good ones does not sink the batch; only a choice with
        no good file at all is an error."""
        files = self.cleaned_data["images"]
        if len(files) > self.max_files:
            if self.max_files == 1:
                raise forms.ValidationError("Log in to classify several images at once.")
            raise forms.ValidationError(f"At most {self.max_files} images at once.")
        for upload in files:
            name = upload.name or "image"
            try:
                self.checked.append(CheckedFile(name, self.checked_content(upload)))
            except InvalidImage as exc:
                self.checked.append(CheckedFile(name, refusal=str(exc)))
        uploads = [(f.name, f.data) for f in self.checked if f.data is not None]
        if self.refused and not uploads:
            raise forms.ValidationError([f"{f.name}: {f.refusal}" for f in self.refused])
        return uploads

    @property
    def refused(self) -> list["CheckedFile"]:
        return [f for f in self.checked if f.refusal]

    @staticmethod
    def checked_content(upload) -> bytes:
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise InvalidImage(
                f"the file is larger than {settings.MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
            )
        data = upload.read()
        inspect_image(data)
        return data

    def clean(self):
        cleaned = super().clean()
        uploads, url = cleaned.get("images") or [], cleaned.get("image_url")
        if self.errors:
            return cleaned
        if uploads and url:
            raise forms.ValidationError("Send files or a URL, not both.")
        if not uploads and not url:
            raise forms.ValidationError("Choose an image file or paste an image URL.")
        if url:
            try:
                fetched = fetch_image_bytes(url)
                inspect_image(fetched.data)
            except (FetchError, InvalidImage) as exc:
                self.add_error("image_url", str(exc))
                return cleaned
            cleaned["fetched"] = fetched
        return cleaned

    def submissions(self):
        """(data, fields) for each image to classify."""
        if "fetched" in self.cleaned_data:
            fetched = self.cleaned_data["fetched"]
            name = fetched.url.rsplit("/", 1)[-1].split("?")[0][:255]
            return [
                (fetched.data, {"filename": name, "source_url": self.cleaned_data["image_url"]})
            ]
        return [(data, {"filename": name}) for name, data in self.cleaned_data["images"]]
