//! A blob uploaded as a stream whose digest is known only at its end, as `docker push`
//! uploads layers: `POST` opens an upload, one `PATCH` carries the bytes as they come,
//! `PUT ?digest=` commits them. Every registry `docker push` works with takes this; one
//! that does not answers the `PATCH` with an error, and the caller uploads the blob whole.

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, StatusCode, Url};

use super::{Scope, Transport};
use crate::registry::failure::Failure;

impl Transport {
    /// Opens an upload to `repository`; returns where to send the bytes.
    pub(crate) async fn start_upload(&self, repository: &str) -> Result<Url, Failure> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let response = self
            .request(
                Method::POST,
                url.clone(),
                &[],
                None,
                Scope::PullPush(repository),
                true,
            )
            .await?;
        self.next_location(&response, &url, StatusCode::ACCEPTED)
    }

    /// Sends `body` to the upload at `location` in one request; returns where to commit.
    /// Sent once, with the credentials the opening request settled on: a stream cannot be
    /// sent again, so a refusal is the caller's to handle (by uploading the blob whole).
    pub(crate) async fn send_upload(
        &self,
        location: &Url,
        repository: &str,
        body: Body,
    ) -> Result<Url, Failure> {
        let authorization = self
            .authorization(Scope::PullPush(repository), false)
            .await?;
        let request = self
            .http
            .patch(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let response = self.send(request, authorization.as_ref()).await?;
        let response = self.success(response, location.as_str()).await?;
        self.next_location(&response, location.as_str(), StatusCode::ACCEPTED)
    }

    /// Commits the upload at `location` as the blob `digest`.
    pub(crate) async fn commit_upload(
        &self,
        location: &Url,
        repository: &str,
        digest: &str,
    ) -> Result<(), Failure> {
        let response = self
            .request(
                Method::PUT,
                location.to_string(),
                &[("digest", digest.to_owned())],
                None,
                Scope::PullPush(repository),
                // Not bounded as a small request: a registry may check the whole blob
                // before it answers.
                false,
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(Failure::Protocol(format!(
                "{location} answered {} to the upload's commit, not 201 Created",
                response.status()
            )));
        }
        Ok(())
    }

    /// The `Location` of an upload answer to `url`, made absolute. Only a location on this
    /// registry is taken: the credentials go with the next request.
    fn next_location(
        &self,
        response: &reqwest::Response,
        url: &str,
        expected: StatusCode,
    ) -> Result<Url, Failure> {
        if response.status() != expected {
            return Err(Failure::Protocol(format!(
                "{url} answered {} to an upload, not {expected}",
                response.status()
            )));
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Failure::Protocol(format!("{url} answered an upload with no usable Location"))
            })?;
        let base = Url::parse(&self.base_url)
            .map_err(|e| Failure::Protocol(format!("{}: {e}", self.base_url)))?;
        let next = base.join(location).map_err(|e| {
            Failure::Protocol(format!(
                "{url} answered an upload with Location {location:?}, not a URL: {e}"
            ))
        })?;
        if next.origin() != base.origin() {
            return Err(Failure::Protocol(format!(
                "{url} sent the upload to {}, not to the registry itself; no credentials go there",
                next.origin().ascii_serialization()
            )));
        }
        Ok(next)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::registry::options::RegistryOptions;

    fn answer(status: u16, location: Option<&str>) -> reqwest::Response {
        let mut builder = http::Response::builder().status(status);
        if let Some(location) = location {
            builder = builder.header("location", location);
        }
        reqwest::Response::from(builder.body(Vec::<u8>::new()).unwrap())
    }

    fn transport() -> Transport {
        Transport::new("registry.example:5000", &RegistryOptions::default()).unwrap()
    }

    #[test]
    fn a_relative_location_is_made_absolute_on_the_registry() {
        let next = transport()
            .next_location(
                &answer(202, Some("/v2/team/p/blobs/uploads/abc?_state=x")),
                "u",
                StatusCode::ACCEPTED,
            )
            .unwrap();
        assert_eq!(
            next.as_str(),
            "https://registry.example:5000/v2/team/p/blobs/uploads/abc?_state=x"
        );
        let absolute = transport()
            .next_location(
                &answer(
                    202,
                    Some("https://registry.example:5000/v2/team/p/blobs/uploads/abc"),
                ),
                "u",
                StatusCode::ACCEPTED,
            )
            .unwrap();
        assert_eq!(absolute.path(), "/v2/team/p/blobs/uploads/abc");
    }

    #[test]
    fn a_location_elsewhere_or_missing_or_a_wrong_status_is_refused() {
        let cases = [
            (
                answer(202, Some("https://elsewhere.example/upload/1")),
                "not to the registry itself",
            ),
            (
                answer(202, Some("http://registry.example:5000/v2/x")),
                "not to the registry itself",
            ),
            (answer(202, None), "no usable Location"),
            (answer(200, Some("/v2/x")), "not 202 Accepted"),
        ];
        for (response, expected) in cases {
            match transport().next_location(&response, "u", StatusCode::ACCEPTED) {
                Err(Failure::Protocol(message)) => {
                    assert!(message.contains(expected), "{message}")
                }
                other => panic!("expected a protocol failure, got {other:?}"),
            }
        }
    }
}
