"""Flask-WTF forms (CSRF-protected by CSRFProtect for every POST)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    NumberRange,
    Regexp,
    ValidationError,
)

MAX_PRICE_CENTS = 100_000_000
# A plausibility check (one @, a dot in the domain, no spaces): the real proof of an
# address is a mail to it. (wtforms' Email() needs the email_validator package.)
_EMAIL = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address.")


class SignupForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), _EMAIL, Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), _EMAIL, Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class EmptyForm(FlaskForm):
    """Just the CSRF token (log out, new API token)."""


class PriceField(StringField):
    """A price typed as "12.50", kept as integer cents in ``data``."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist or not str(valuelist[0]).strip():
            self.data = None
            return
        try:
            value = Decimal(str(valuelist[0]).strip())
        except InvalidOperation:
            self.data = None
            raise ValueError("Enter a price like 12.50.") from None
        if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
            self.data = None
            raise ValueError("Enter a positive price with at most two decimals.")
        self.data = int(value * 100)

    def _value(self) -> str:
        if isinstance(self.data, int):
            return f"{self.data // 100}.{self.data % 100:02d}"
        return str(self.raw_data[0]) if self.raw_data else ""


def _price_limit(form: FlaskForm, field: PriceField) -> None:
    if field.data is None:
        raise ValidationError("Enter a price.")
    if field.data > MAX_PRICE_CENTS:
        raise ValidationError("That price is too high.")


class ProductForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    description = TextAreaField("Description", validators=[Length(max=5000)])
    price = PriceField("Price (EUR)", validators=[_price_limit])
    image = FileField("Image (PNG, JPEG, WebP or GIF)", validators=[FileRequired()])


class OrderForm(FlaskForm):
    quantity = IntegerField("Quantity", default=1, validators=[NumberRange(min=1, max=100)])
    # Generated when the form is shown: a double-submitted form creates one order.
    idempotency_key = HiddenField()
