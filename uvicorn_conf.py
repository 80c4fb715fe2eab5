"""`uvicorn uvicorn_conf:app --reload` serves the app (the classic way to run it)."""

from app.main import create_app

app = create_app()
