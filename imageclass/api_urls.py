from django.urls import path

from accounts import api as accounts_api
from classifier import api as classifier_api

app_name = "api"
urlpatterns = [
    path("auth/register/", accounts_api.RegisterView.as_view(), name="register"),
    path("auth/token/", accounts_api.TokenView.as_view(), name="token"),
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path(
        "classifications/",
        classifier_api.ClassificationListView.as_view(),
        name="classification-list",
    ),
    path(
        "classifications/<str:pk>/",
        classifier_api.ClassificationDetailView.as_view(),
        name="classification-detail",
    ),
    path(
        "classifications/<str:pk>/image/",
        classifier_api.ClassificationImageView.as_view(),
        name="classification-image",
    ),
    path(
        "classifications/<str:pk>/heatmap/",
        classifier_api.ClassificationHeatmapView.as_view(),
        name="classification-heatmap",
    ),
    path(
        "classifications/<str:pk>/feedback/",
        classifier_api.ClassificationFeedbackView.as_view(),
        name="classification-feedback",
    ),
    path("trash/", classifier_api.TrashListView.as_view(), name="trash-list"),
    path("trash/<str:pk>/", classifier_api.TrashDetailView.as_view(), name="trash-detail"),
    path(
        "trash/<str:pk>/restore/",
        classifier_api.TrashRestoreView.as_view(),
        name="trash-restore",
    ),
    path("shares/", accounts_api.ShareListView.as_view(), name="share-list"),
    path("shares/<str:pk>/", accounts_api.ShareDetailView.as_view(), name="share-detail"),
    path(
        "shared/<str:username>/classifications/",
        classifier_api.SharedHistoryView.as_view(),
        name="shared-history",
    ),
    path("models/", classifier_api.ModelVersionListView.as_view(), name="model-list"),
    path("models/active/", classifier_api.ActiveModelView.as_view(), name="model-active"),
]
