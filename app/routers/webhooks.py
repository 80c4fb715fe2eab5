from app.routers.common import make_router

router = make_router(tags=["webhooks"])
