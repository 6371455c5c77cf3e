"""``flask --app wsgi seed``: demo products with generated images and a demo user.

Idempotent: products and the user are created only when missing, so running it on
every start (as ``make run`` does) never duplicates anything.
"""

from __future__ import annotations

import io

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from shop.cache import invalidate_products
from shop.extensions import db
from shop.media import store_image
from shop.models import Product, User

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - demo data, printed and documented

PRODUCTS = [
    ("Espresso cup", "A thick-walled porcelain cup that keeps the crema.", 1200, (176, 96, 48)),
    ("Pour-over kettle", "Gooseneck kettle, 1 litre, for a steady slow pour.", 4500, (60, 90, 120)),
    ("Burr grinder", "Hand grinder with conical steel burrs and 40 settings.", 8900, (70, 70, 70)),
    ("Paper filters", "100 unbleached filters, size 02.", 650, (215, 200, 170)),
    ("Coffee beans", "Washed Ethiopian, light roast, 250 g.", 1450, (120, 70, 40)),
    ("Travel mug", "Double-walled steel mug with a leak-proof lid.", 2400, (40, 130, 110)),
]


def demo_image(color: tuple[int, int, int], label: str) -> bytes:
    from PIL import Image, ImageDraw  # the seed command only, never a serving worker

    image = Image.new("RGB", (480, 360), color)
    draw = ImageDraw.Draw(image)
    light = tuple(min(255, c + 60) for c in color)
    draw.ellipse((140, 80, 340, 280), fill=light)
    draw.text((20, 320), label, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def seed_demo(token: str | None = None) -> tuple[int, User, str | None]:
    """Create what is missing; return (products created, the demo user, its new token
    or None when the user already existed and no token was asked for)."""
    existing = set(db.session.scalars(select(Product.name)))
    created = 0
    for name, description, price, color in PRODUCTS:
        if name in existing:
            continue
        filename = store_image(demo_image(color, name))
        db.session.add(
            Product(name=name, description=description, price_cents=price, image_filename=filename)
        )
        created += 1
    user = db.session.scalars(select(User).where(User.email == DEMO_EMAIL)).first()
    new_token = None
    if user is None:
        user = User(email=DEMO_EMAIL)
        user.set_password(DEMO_PASSWORD)
        db.session.add(user)
        new_token = user.issue_api_token(token)
    elif token:
        new_token = user.issue_api_token(token)
    db.session.commit()
    if created:
        invalidate_products()
    return created, user, new_token


@click.command("seed")
@click.option(
    "--token",
    envvar="SHOP_DEMO_TOKEN",
    help="Set the demo user's API token to this value (benchmarks). Default: a random "
    "token when the user is created.",
)
@with_appcontext
def seed_command(token: str | None) -> None:
    """Create demo products and the demo user (idempotent)."""
    created, user, new_token = seed_demo(token)
    click.echo(f"seed: {created} product(s) created, {len(PRODUCTS) - created} already there")
    click.echo(f"seed: demo user {user.email} / password {DEMO_PASSWORD}")
    if new_token:
        click.echo(f"seed: API token: {new_token}")
        click.echo(f"      curl -H 'Authorization: Bearer {new_token}' .../api/orders")
    else:
        click.echo("seed: API token unchanged (pass --token or SHOP_DEMO_TOKEN to set one)")


def init_seed(app: Flask) -> None:
    app.cli.add_command(seed_command)
