from django import template

from classifier.labels import display_label

register = template.Library()


@register.filter
def percent(value, digits=1):
    """0.9123 -> '91.2%'; empty for a missing value."""
    if value is None or value == "":
        return ""
    return f"{float(value) * 100:.{int(digits)}f}%"


register.filter("label", display_label)
