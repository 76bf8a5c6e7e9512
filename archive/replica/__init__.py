"""The off-station replica: uploads to S3-compatible storage under Object Lock."""
