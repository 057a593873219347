"""URL converters: `<objectid:pk>` matches only a MongoDB ObjectId's 24 hex digits, so a
malformed id in a URL is the resolver's 404 before any view asks the database with it."""

from bson import ObjectId
from django.urls import register_converter


class ObjectIdConverter:
    regex = "[0-9a-fA-F]{24}"

    def to_python(self, value: str) -> ObjectId:
        return ObjectId(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(ObjectIdConverter, "objectid")
