"""Order pages: place an order from a product page, list my orders."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from shop.auth import current_user, login_required
from shop.extensions import db
from shop.forms import OrderForm
from shop.models import Product
from shop.ordering import KeyReused, OrderInvalid, check_key, orders_of, place_order

bp = Blueprint("orders", __name__)


@bp.route("/products/<id:product_id>/order", methods=["POST"])
@login_required
def place(product_id: int) -> tuple[str, int] | Response:
    product = db.session.get(Product, product_id) or abort(404)
    user = current_user()
    assert user is not None
    form = OrderForm()
    if form.validate_on_submit():
        try:
            placed = place_order(
                user,
                [(product.id, form.quantity.data)],
                check_key(form.idempotency_key.data or None),
            )
        except (OrderInvalid, KeyReused):
            form.quantity.errors = ["This order could not be placed; please try again."]
        else:
            if placed.created:
                flash(f"Order #{placed.order.id} placed.", "success")
            return redirect(url_for("orders.mine"))
    return render_template("product.html", product=product, form=form), 400


@bp.route("/orders")
@login_required
def mine() -> str:
    user = current_user()
    assert user is not None
    return render_template("orders.html", orders=orders_of(user))
