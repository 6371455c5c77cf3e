"""`flaskprod deploy`: provisioning servers over SSH and releasing the app to them."""
