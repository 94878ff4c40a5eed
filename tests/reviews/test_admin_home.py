"""The site root sends each role to where its day starts."""

import pytest

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("role", ["reviewer", "senior"])
def test_reviewers_land_on_the_queue(client, request, role):
    client.force_login(request.getfixturevalue(role))
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/reviews/reviewcase/"


def test_support_lands_on_the_lookup(client, support):
    client.force_login(support)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/reviews/lookup/"


def test_admin_gets_the_admin_index(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Criteria" in content
    assert "Denial reasons" in content


def test_login_then_lands_on_the_queue(client, reviewer):
    response = client.post(
        "/login/?next=/", {"username": reviewer.email, "password": "pw"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/reviews/reviewcase/"
