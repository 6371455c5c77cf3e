import os


class Config:
    SECRET_KEY = "b7f3c9e1a2d84f6e9c0a5b3d7e1f2a4c"
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "sqlite:///app.db")
    DEBUG = os.environ.get("FLASK_DEBUG") == "1"
