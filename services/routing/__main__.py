"""``python -m services.routing``: run the routing worker."""

from services.common.main import run_service
from services.routing.app import SERVICE, build

if __name__ == "__main__":
    run_service(SERVICE, build)
