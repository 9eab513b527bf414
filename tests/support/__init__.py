"""What the tests share: paths, local servers (S3, a faulty proxy, Prefect) and input builders; conftest wires them."""
