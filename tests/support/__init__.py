"""What the tests stand on: the runtimes, the doubles beside them, and the helpers.

An API test runs against a runtime: ``local`` (the FastAPI app on the embedded stores, in
process) or ``worker`` (the Worker as deployed, on real workerd: :mod:`.workerd`). Which
ones is stated, never inferred: ``@pytest.mark.runtimes("local", "worker")`` (:mod:`.runtimes`).

Each double a black-box test sees is one module: its ``Protocol`` and each runtime's
implementation side by side, and the fixture that picks one for the test's runtime (and is
typed by the Protocol): the image model (:mod:`.model`), Llama Guard (:mod:`.guard`), the
output classifier (:mod:`.scout`), the wall clock (:mod:`.clock`), KV and R2 seen from outside
(:mod:`.storage`), the job queue and records (:mod:`.jobs`), the audit and access lines
(:mod:`.logs`), the usage events (:mod:`.usage`), a sign-in provider and Firebase App Check
(:mod:`.sign_in`, on :mod:`.oidc_issuer`, a real OIDC issuer on loopback). What only exists
in process (the gateway, its ports and stores: white-box) is in :mod:`.local`; the clients,
keys and policy documents in :mod:`.clients` and :mod:`.admin`; the declared configuration
(settings, secrets, unbound tables, ``--no-fast-path``) in :mod:`.config`.

The other modules are helpers the tests import: request bodies (:mod:`.bodies`), encoded
images (:mod:`.image_files`), polling (:mod:`.polling`), a webhook receiver
(:mod:`.receiver`), real server processes (:mod:`.servers`), the docs' curl sessions
(:mod:`.doc_sessions`), exiftool (:mod:`.exiftool`),
the Pyodide unit harnesses (:mod:`.pyodide_runner`), and the module walk of a request with
the layout's layers (:mod:`.module_walk`, plain Python: the Pyodide harness imports it
too; :mod:`.walks` makes the local server's walks). ``tests/conftest.py`` registers the
fixture modules and holds nothing else.
"""
