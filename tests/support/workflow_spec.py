"""The workflow the product promises, written out independently of the migrations."""

from worker.domain.workflow import Status, Workflow

STATUSES = [
    Status("pending", "Pending", "待处理"),
    Status("pending_review", "Pending review", "待审核"),
    Status("in_progress", "In progress", "进行中"),
    Status("processed", "Processed", "已处理"),
    Status("completed", "Completed", "已完成"),
    Status("cancelled", "Cancelled", "已取消"),
]

ALLOWED = {
    "pending": {"pending_review", "in_progress", "cancelled"},
    "pending_review": {"pending", "in_progress", "cancelled"},
    "in_progress": {"processed", "completed", "pending", "cancelled"},
    "processed": {"completed", "in_progress"},
    "completed": {"in_progress"},
    "cancelled": {"pending"},
}

CODES = [status.code for status in STATUSES]

ALL_PAIRS = [(a, b) for a in CODES for b in CODES]


def spec_workflow() -> Workflow:
    return Workflow.build(
        STATUSES, "pending", [(a, b) for a, targets in ALLOWED.items() for b in targets]
    )
