"""IAM enforced in the local cloud: each Lambda calls AWS with its own role's credentials, the
SageMaker emulator touches S3 with the execution role's, and a proxy in front of moto and the
emulator checks every such call against the role's identity-based policies (``roles``: the roles
of the transformed template; ``actions``: what IAM action and resource a request is; ``policy``:
the evaluation; ``proxy``: the HTTP front and AWS's error shapes; ``simulate``: the IAM endpoint's
``SimulatePrincipalPolicy``). ``LOCALCLOUD_IAM=off`` turns it off.
"""
