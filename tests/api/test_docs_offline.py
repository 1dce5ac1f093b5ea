"""Swagger UI comes from the service itself: no page asset is fetched from another host."""

import re


def test_docs_page_loads_its_assets_from_the_service(client):
    page = client.get("/cloud-agent/docs").get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/cloud-agent/docs/assets/") for source in sources)
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.data) > 1000


def test_unknown_asset_is_404(client):
    assert client.get("/cloud-agent/docs/assets/nothing.js").status_code == 404
