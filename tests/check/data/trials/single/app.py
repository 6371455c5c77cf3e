from flask import Flask, redirect, render_template_string, request, session

app = Flask(__name__)
app.secret_key = "dev"

PAGE = "<form method=post><input name=name><button>Go</button></form>{{ name }}"


@app.route("/", methods=["GET", "POST"])
def index():
    if request.method == "POST":
        session["name"] = request.form["name"]
        return redirect("/")
    return render_template_string(PAGE, name=session.get("name", ""))


if __name__ == "__main__":
    app.run(host="0.0.0.0", debug=True)  # noqa: S201 - the trial: a typical tutorial app
