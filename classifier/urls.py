from django.urls import path

from classifier import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<str:pk>/", views.result, name="result"),
    path("c/<str:pk>/status", views.result_status, name="result_status"),
    path("c/<str:pk>/image", views.result_image, name="result_image"),
]
