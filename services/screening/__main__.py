"""``python -m services.screening``: run the screening worker."""

from services.common.main import run_service
from services.screening.app import SERVICE, build

if __name__ == "__main__":
    run_service(SERVICE, build)
