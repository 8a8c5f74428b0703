"""Run with ``uvicorn main:app`` or ``panther-ws serve main:app`` from this folder."""

from app.urls import urls

from panther_ws import App

app = App(urls)
