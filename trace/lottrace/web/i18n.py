"""The web app's words, in Spanish (the default) and English: one catalogue for the templates
and the strings each page's script needs.

>>> t("es", "login.title"), t("en", "login.title")
('Entrar', 'Sign in')
>>> pick_lang("en", None), pick_lang(None, "en"), pick_lang("xx", None)
('en', 'en', 'es')
"""

from __future__ import annotations

__all__ = ["CATALOGUE", "DEFAULT", "LANGS", "pick_lang", "strings", "t"]

LANGS = ("es", "en")
DEFAULT = "es"

CATALOGUE: dict[str, dict[str, str]] = {
    "es": {
        "app.name": "lottrace",
        "app.skip": "Saltar al contenido",
        "nav.home": "Inicio",
        "nav.field": "Registrar",
        "nav.upload": "Subir hoja",
        "nav.find": "Buscar lote",
        "nav.dashboard": "Tablero",
        "nav.login": "Entrar",
        "nav.logout": "Salir",
        "nav.lang": "English",
        "nav.lang_label": "Change the language to English",
        "nav.main": "Principal",
        "outbox.waiting": "Por enviar: {n}",
        "outbox.none": "Nada por enviar",
        "outbox.sent": "Enviado: {n}",
        "outbox.failed": "No se pudo guardar {lot}: {detail}",
        "offline": "Sin conexión: lo registrado se guarda en el teléfono y se envía al volver.",
        "login.title": "Entrar",
        "login.intro": "Pegue la clave (token) que le dio el administrador. Se guarda solo en "
        "este navegador.",
        "login.token": "Clave (token)",
        "login.submit": "Entrar",
        "login.bad": "Esa clave no es de un usuario activo.",
        "login.ok": "Bienvenido, {name}.",
        "login.offline": "Sin conexión: no se puede comprobar la clave ahora.",
        "home.title": "Inicio",
        "home.hello": "Hola, {name} ({org}, {role}).",
        "home.signin": "Entre con su clave para empezar.",
        "home.field": "Registrar un punto de control (cosecha, secado, acopio, control de "
        "calidad, trilla, exportación) desde el teléfono, con o sin conexión.",
        "home.upload": "Subir una hoja de cálculo (CSV o Excel), revisar sus columnas y "
        "cada problema, e importarla.",
        "home.find": "Buscar un lote por código, productor o contenedor y ver su pasaporte.",
        "home.dashboard": "Ver dónde espera el café: demoras, cuellos de botella, lotes detenidos.",
        "error.network": "No hay conexión con el servidor.",
        "error.auth": "Su clave ya no vale: entre de nuevo.",
        "error.generic": "Algo falló: {detail}",
    },
    "en": {
        "app.name": "lottrace",
        "app.skip": "Skip to content",
        "nav.home": "Home",
        "nav.field": "Log",
        "nav.upload": "Upload sheet",
        "nav.find": "Find a lot",
        "nav.dashboard": "Dashboard",
        "nav.login": "Sign in",
        "nav.logout": "Sign out",
        "nav.lang": "Español",
        "nav.lang_label": "Cambiar el idioma a español",
        "nav.main": "Main",
        "outbox.waiting": "Waiting to send: {n}",
        "outbox.none": "Nothing waiting",
        "outbox.sent": "Sent: {n}",
        "outbox.failed": "{lot} could not be saved: {detail}",
        "offline": "Offline: what you log is kept on this phone and sent when the "
        "connection is back.",
        "login.title": "Sign in",
        "login.intro": "Paste the token your administrator gave you. It is kept in this "
        "browser only.",
        "login.token": "Token",
        "login.submit": "Sign in",
        "login.bad": "That token is not a live user's.",
        "login.ok": "Welcome, {name}.",
        "login.offline": "Offline: the token cannot be checked now.",
        "home.title": "Home",
        "home.hello": "Hello, {name} ({org}, {role}).",
        "home.signin": "Sign in with your token to start.",
        "home.field": "Log a checkpoint (harvest, drying, gatherer, QC, dry mill, export) "
        "from a phone, online or not.",
        "home.upload": "Upload a spreadsheet (CSV or Excel), check its columns and every "
        "problem, and import it.",
        "home.find": "Find a lot by code, producer or container and open its passport.",
        "home.dashboard": "See where coffee waits: delays, bottlenecks, stuck lots.",
        "error.network": "The server cannot be reached.",
        "error.auth": "Your token is no longer valid: sign in again.",
        "error.generic": "Something failed: {detail}",
    },
}


def pick_lang(query: str | None, cookie: str | None) -> str:
    """The page's language: ``?lang=`` first, then the ``lang`` cookie, else Spanish."""
    for lang in (query, cookie):
        if lang in LANGS:
            return lang
    return DEFAULT


def t(lang: str, key: str, **values: object) -> str:
    """The message ``key`` in ``lang`` (Spanish when missing in English), ``{}`` filled."""
    text = CATALOGUE.get(lang, CATALOGUE[DEFAULT]).get(key) or CATALOGUE[DEFAULT][key]
    return text.format(**values) if values else text


def strings(lang: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The messages whose key starts with one of ``prefixes``: what a page's script needs."""
    cat = CATALOGUE.get(lang, CATALOGUE[DEFAULT])
    return {k: v for k, v in cat.items() if k.startswith(prefixes)}
