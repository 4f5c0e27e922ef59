"""``python -m services.intake``: run the intake worker."""

from services.common.main import run_service
from services.intake.app import SERVICE, build

if __name__ == "__main__":
    run_service(SERVICE, build)
