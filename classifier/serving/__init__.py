"""Serving: the models as workers load and run them. TensorFlow lives here; the web process never
imports this package."""
