"""The project's MongoDB layer: the database engine (`base`: django-mongodb-backend with one fix)
and the document helpers that both apps' models use (`documents`)."""
