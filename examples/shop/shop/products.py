"""Product pages: the list, one product (with its order form), and creating one."""

from __future__ import annotations

import uuid

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    send_from_directory,
    url_for,
)
from sqlalchemy import select
from werkzeug.wrappers import Response

from shop.auth import current_user, form_status, login_required
from shop.cache import invalidate_products
from shop.extensions import db
from shop.forms import OrderForm, ProductForm
from shop.jobs import enqueue_thumbnail
from shop.media import NotAnImage, media_root, store_image
from shop.models import Product

bp = Blueprint("products", __name__)

PAGE_SIZE = 24


@bp.route("/")
def index() -> str:
    products = db.session.scalars(
        select(Product).order_by(Product.created_at.desc(), Product.id.desc()).limit(PAGE_SIZE)
    ).all()
    return render_template("index.html", products=products)


@bp.route("/products/<id:product_id>")
def detail(product_id: int) -> str:
    product = db.session.get(Product, product_id) or abort(404)
    form = OrderForm(idempotency_key=uuid.uuid4().hex) if current_user() else None
    return render_template("product.html", product=product, form=form)


@bp.route("/products/new", methods=["GET", "POST"])
@login_required
def new() -> tuple[str, int] | Response:
    form = ProductForm()
    if form.validate_on_submit():
        try:
            filename = store_image(form.image.data.read())
        except NotAnImage as error:
            form.image.errors = [str(error)]
        else:
            product = Product(
                name=form.name.data.strip(),
                description=(form.description.data or "").strip(),
                price_cents=form.price.data,
                image_filename=filename,
            )
            db.session.add(product)
            db.session.commit()
            invalidate_products()
            enqueue_thumbnail(filename)  # the worker makes it; this answers at once
            flash("Product created.", "success")
            return redirect(url_for("products.detail", product_id=product.id))
    return render_template("product_new.html", form=form), form_status(form)


def serve_media(name: str) -> Response:
    """Uploads, served by the app only when SERVE_MEDIA is on (development, `make run`
    without nginx); in production nginx serves MEDIA_ROOT at MEDIA_URL."""
    return send_from_directory(media_root(current_app), name, max_age=86400)
