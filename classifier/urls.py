from django.urls import path

from classifier import views

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<str:pk>/", views.result, name="result"),
    path("c/<str:pk>/status", views.result_status, name="result_status"),
    path("c/<str:pk>/image", views.result_image, name="result_image"),
    path("c/<str:pk>/thumbnail", views.result_thumbnail, name="result_thumbnail"),
    path("c/<str:pk>/heatmap", views.result_heatmap, name="result_heatmap"),
    path("c/<str:pk>/delete", views.delete_one, name="delete"),
    path("c/<str:pk>/feedback", views.feedback, name="feedback"),
    path("batch/", views.batch, name="batch"),
    path("results/status", views.results_status, name="results_status"),
    path("history/", views.my_history, name="history"),
    path("history/delete", views.delete_many, name="delete_many"),
    path("history/export.<str:fmt>", views.export, name="export"),
    path("trash/", views.trash, name="trash"),
    path("trash/empty", views.trash_empty, name="trash_empty"),
    path("trash/<str:pk>/thumbnail", views.trash_thumbnail, name="trash_thumbnail"),
    path("trash/<str:pk>/restore", views.trash_restore, name="trash_restore"),
    path("trash/<str:pk>/purge", views.trash_purge, name="trash_purge"),
    path("shared/", views.shared_with_me, name="shared"),
    path("shared/<str:username>/", views.shared_history, name="shared_history"),
]
