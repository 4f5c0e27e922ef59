"""``python -m services.notifications``: run the notifications worker."""

from services.common.main import run_service
from services.notifications.app import SERVICE, build

if __name__ == "__main__":
    run_service(SERVICE, build)
