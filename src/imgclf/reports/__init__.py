"""Self-contained HTML reports (plots inlined as base64 PNG): validate, label audit, evaluation.

Imported only by the code that writes a report, so steps stay fast to import (matplotlib loads
only when a report is drawn).
"""
