"""Nuvom 0.11's ``nuvom.plugins.registry`` is gone; importing it says what replaces it.

0.11 plugins registered backend classes from ``start()`` with
``register_queue_backend(name, cls)``.  Components are now registered by hooks
that run when plugins load, before any app starts, so that call has no
equivalent to alias.
"""

raise ImportError(
    "nuvom.plugins.registry (Nuvom 0.11's register_queue_backend/register_result_backend) no longer exists: "
    "register components with the nuvom_register_queue_backends / nuvom_register_result_backends hooks "
    "(docs/plugins.md, or `nuvom plugin scaffold NAME --kind queue-backend` for a working example); "
    "0.11 plugins that only use start()/stop() keep working through nuvom.plugins.contracts.Plugin"
)
