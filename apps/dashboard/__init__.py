"""The interp dashboard (Dash): attention atlas and one page per analysis kind; see app.py."""
